/* A stand-in for one of WinPE's own tools (wpeinit, drvload, wpeutil) in the start-file test under Wine:
 * it appends its name and arguments to Z:\calls.txt, so the test sees what startnet.cmd called. */
#include <stdio.h>

int main(int argc, char **argv)
{
    FILE *f = fopen("Z:\\calls.txt", "a");
    if (!f)
        return 1;
    fputs(NAME, f);
    for (int i = 1; i < argc; i++)
        fprintf(f, " %s", argv[i]);
    fputs("\n", f);
    return fclose(f) != 0;
}
