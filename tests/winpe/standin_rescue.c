/* A stand-in rescue.exe for the WinPE tests while the Windows build (builder/windows.py) is not in the
 * checkout: an x64 console program importing only what WinPE's System32 has, printing a version line. */
#include <stdio.h>

int main(void)
{
    puts("rescue, version 0.0.0 (stand-in)");
    return 0;
}
