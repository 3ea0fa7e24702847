"""What WinPE runs at start, as put into the image: ``winpeshl.ini`` and ``startnet.cmd``.

``winpeshl.ini`` names the shell: ours is ``cmd /k startnet.cmd``. Writing it also keeps an install
ISO's Setup image from starting Setup (that image's own ``winpeshl.ini`` launches ``setup.exe``).

``startnet.cmd`` initialises WinPE (``wpeinit``: PnP, network), loads the drivers put into the image
(``drvload``, no DISM needed), puts ``X:\\rescue`` on PATH, then looks for the boot medium: the volume
whose ``\\rescue-pe.id`` holds this build's id (the image carries the same id in
``X:\\rescue-pe\\medium.id``), probing drive letters C..Z (WinPE itself is X:). Only on that medium is a
``rescue-run.cmd`` run, unattended, so a script on another stick that happens to be plugged in (one that
restores onto a disk, say) never runs. The run's output goes to ``rescue-run.log`` on the medium (a
USB stick), or to ``X:\\rescue-run.log`` when the medium is read-only (a CD), then WinPE powers off
(``wpeutil shutdown``). Without a script the guide starts (``rescue guide``); its Shell choice, or
leaving it, gives cmd's prompt, where ``rescue guide`` starts it again; its Power off and Restart call
``wpeutil`` themselves. "Shell only": a file ``rescue-shell-only`` at the medium's root (or in
``X:\\rescue-pe``) gives the prompt with the disks listed instead of the guide.

Batch files are written with CRLF line ends: cmd.exe misparses labels and ``goto`` over LF-only lines.
"""

from __future__ import annotations

WINPESHL_INI = """\
[LaunchApps]
%SYSTEMROOT%\\System32\\cmd.exe, /k %SYSTEMROOT%\\System32\\startnet.cmd
"""

STARTNET_CMD = """\
@echo off
rem Written by rescue-build winpe @VERSION@ (build @BUILD_ID@): see builder/winpe_start.py.
wpeinit
set PATH=X:\\rescue;%PATH%
if exist X:\\rescue-pe\\drivers for /r X:\\rescue-pe\\drivers %%f in (*.inf) do drvload "%%f"
set MEDIUM=
set /p MEDIUM_ID=<X:\\rescue-pe\\medium.id
for %%d in (C D E F G H I J K L M N O P Q R S T U V W Y Z) do call :probe %%d
if not defined MEDIUM goto console
if not exist "%MEDIUM%\\rescue-run.cmd" goto console
call :unattended
wpeutil shutdown
goto :eof

:probe
if defined MEDIUM goto :eof
if not exist %1:\\rescue-pe.id goto :eof
set FOUND=
set /p FOUND=<%1:\\rescue-pe.id
if "%FOUND%"=="%MEDIUM_ID%" set MEDIUM=%1:
goto :eof

:unattended
rem The log goes to the medium when it is writable (a USB stick), else to X: (a CD). Plain redirections
rem only: a redirected (block) and a digit right before ">" (read as a handle number) misbehave.
set LOG=%MEDIUM%\\rescue-run.log
echo rescue-run: start %DATE% %TIME% medium=%MEDIUM% > "%LOG%" 2>nul
if not exist "%LOG%" set LOG=X:\\rescue-run.log
if "%LOG%"=="X:\\rescue-run.log" echo rescue-run: start %DATE% %TIME% read-only %MEDIUM%, log on X: > "%LOG%"
rem cmd /c: an "exit" in the script ends that cmd, not this one (which still has to power off)
cmd /c "%MEDIUM%\\rescue-run.cmd" >> "%LOG%" 2>&1
echo rescue-run: exit %ERRORLEVEL% >> "%LOG%"
goto :eof

:console
if exist X:\\rescue-pe\\rescue-shell-only goto shell
if defined MEDIUM if exist "%MEDIUM%\\rescue-shell-only" goto shell
rescue guide
cls
echo.
echo Rescue @VERSION@ on WinPE: "rescue guide" starts the guide again,
echo "rescue --help" lists the commands, "wpeutil shutdown" powers off.
goto :eof

:shell
echo.
echo Rescue @VERSION@ on WinPE: "rescue guide" starts the guide,
echo "rescue --help" lists the commands, "wpeutil shutdown" powers off.
echo.
rescue disks
goto :eof
"""


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")


def startnet(version: str, build_id: str) -> bytes:
    return crlf(STARTNET_CMD.replace("@VERSION@", version).replace("@BUILD_ID@", build_id))


def winpeshl() -> bytes:
    return crlf(WINPESHL_INI)
