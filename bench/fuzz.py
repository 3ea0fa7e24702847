"""Coverage-guided fuzzing of the parsers, at volume (not in CI): a million inputs per parser.

    .venv/bin/pip install atheris               # Apache-2.0; a bench tool only, never a dependency
    .venv/bin/python bench/fuzz.py              # every target, 1 000 000 inputs each
    .venv/bin/python bench/fuzz.py --runs 20000 --seconds 60 --targets partition,regf

The targets are those of tests/fuzz_targets.py (partition tables, NTFS boot sector, MFT records,
runlists, directory indexes, FAT, regf, BCD elements, the manifest and its metadata), each run in its
own process under atheris (libFuzzer driving Python with coverage of ``core`` only), starting from
the seeds made there with the real tools plus every input kept in tests/fuzz_corpus/. The growing
corpus lives in bench/work/fuzz/TARGET/. An input that makes a target raise anything but our own
error, run longer than ``--timeout`` seconds or use more than ``--rss-mb`` is a failure: it is copied
to tests/fuzz_corpus/TARGET/ (kept for ever: tests/test_fuzz_corpus.py replays it in CI) and the
target stops there (fix the parser, then run again). A markdown table of the counts is printed for
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work" / "fuzz"
MAX_LEN = 64 * 1024  # the largest seed (a FAT head) is ~56 KiB; longer inputs only slow the mutations


def fuzz_one(target: str, libfuzzer_args: list[str]) -> None:
    """In the child: instrument ``core``, then hand the target to libFuzzer (which exits the process)."""
    import atheris  # type: ignore[import-untyped]

    sys.path.insert(0, str(ROOT))
    with atheris.instrument_imports(include=["core"]):
        from tests import fuzz_targets

    fuzz_targets.run(target, b"")  # build the target's base volume (mkntfs) before the clock starts

    def test_one_input(data: bytes) -> None:
        fuzz_targets.run(target, data)

    atheris.Setup([sys.argv[0], *libfuzzer_args], test_one_input)
    atheris.Fuzz()


def prepare(target: str) -> Path:
    """The target's working corpus: seeds (first time) and every kept regression input."""
    sys.path.insert(0, str(ROOT))
    from tests import fuzz_targets

    corpus = WORK / target / "corpus"
    if not corpus.exists():
        corpus.mkdir(parents=True)
        for data in fuzz_targets.seeds(target):
            (corpus / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)
    kept = fuzz_targets.corpus_dir(ROOT, target)
    if kept.is_dir():
        for f in kept.iterdir():
            shutil.copyfile(f, corpus / f.name)
    return corpus


def run_target(target: str, runs: int, seconds: int, timeout: int, rss_mb: int) -> dict[str, object]:
    corpus = prepare(target)
    artifacts = WORK / target / "artifacts"
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    args = [f"-runs={runs}", f"-max_total_time={seconds}", f"-timeout={timeout}", f"-rss_limit_mb={rss_mb}",
            f"-max_len={MAX_LEN}", f"-artifact_prefix={artifacts}/", "-print_final_stats=1", str(corpus)]
    started = time.monotonic()
    p = subprocess.run([sys.executable, __file__, "--one", target, "--", *args], cwd=ROOT,
                       capture_output=True, text=True, errors="replace")
    elapsed = time.monotonic() - started
    (WORK / target / "last.log").write_text(p.stderr)
    m = re.search(r"stat::number_of_executed_units: (\d+)", p.stderr)
    executed = int(m.group(1)) if m else 0
    failures = []
    for f in sorted(artifacts.iterdir()):
        kind = f.name.split("-")[0]  # crash, timeout, oom, slow-unit, leak
        if kind == "slow":
            continue  # slow, not failing: libFuzzer's note, below the timeout
        data = f.read_bytes()
        kept = ROOT / "tests" / "fuzz_corpus" / target / f"{kind}-{hashlib.sha1(data).hexdigest()[:16]}"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(data)
        failures.append(str(kept.relative_to(ROOT)))
    if p.returncode != 0 and not failures:
        raise SystemExit(f"{target}: the fuzzer failed without an artifact:\n{p.stderr[-2000:]}")
    return {"target": target, "inputs": executed, "seconds": round(elapsed), "failures": failures,
            "corpus": len(list(corpus.iterdir())), "log": p.stderr if failures else ""}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        fuzz_one(sys.argv[2], sys.argv[4:] if sys.argv[3:4] == ["--"] else sys.argv[3:])
        return
    sys.path.insert(0, str(ROOT))
    from tests.fuzz_targets import TARGETS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=1_000_000, help="inputs per target (default 1000000)")
    ap.add_argument("--seconds", type=int, default=24 * 3600, help="time cap per target")
    ap.add_argument("--targets", default=",".join(TARGETS), help="comma-separated, default all")
    ap.add_argument("--timeout", type=int, default=10, help="seconds one input may take (R-30: well under 1)")
    ap.add_argument("--rss-mb", type=int, default=1024, help="memory cap of the fuzzing process")
    a = ap.parse_args()
    try:
        import atheris  # noqa: F401
    except ImportError:
        raise SystemExit("atheris is missing: .venv/bin/pip install atheris")
    rows = []
    for target in a.targets.split(","):
        r = run_target(target, a.runs, a.seconds, a.timeout, a.rss_mb)
        rows.append(r)
        print(f"{target}: {r['inputs']} inputs in {r['seconds']} s, corpus {r['corpus']}, "
              f"failures {r['failures'] or 'none'}", flush=True)
        if r["failures"]:
            print(str(r["log"])[-3000:], file=sys.stderr)
    print("\n| parser target | inputs | seconds | inputs/s | corpus | failures |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        rate = int(r["inputs"]) / max(1, int(r["seconds"]))  # type: ignore[call-overload]
        print(f"| {r['target']} | {r['inputs']} | {r['seconds']} | {rate:.0f} | {r['corpus']} | "
              f"{len(r['failures']) or 'none'} |")  # type: ignore[arg-type]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
