"""`rescue guide`: a keyboard-only text console for people who do not type commands.

One module per screen or step: `app` runs the screens and the jobs, `ui` holds the widgets they share,
`main_menu` is the first screen; `backup`, `restore`, `clone`, `files` (with `browse`) and `repair` are
the guided jobs; `points` chooses a restore point, `disks` names the disks, `places` finds where a
backup can go, `confirm` shows a plan and asks for the target's name, `password` asks for passwords,
`job` runs an engine operation with its progress screen and log, and `result` says how it ended. The
guide calls the same engine functions as the CLI (never the CLI itself), so every refusal is the
engine's own words and nothing is written before the confirmation.
"""
