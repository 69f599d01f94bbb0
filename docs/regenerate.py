"""Re-run the tutorials in full and refresh what the docs show of them.

Each `examples/<name>.py` tutorial runs in full, on one thread (the
tutorials in `THREADS` on as many as it gives), with `--out docs/img` when it
draws figures, and its printed output is written to
`docs/tutorials/output/<name>.txt`, which the tutorial page includes. Run
from the repository root:

    python docs/regenerate.py                 # every tutorial
    python docs/regenerate.py dates addition  # some of them
"""

import argparse
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
OUTPUT = ROOT / "docs" / "tutorials" / "output"
FIGURES = ROOT / "docs" / "img"
# The G2P tutorial trains for most of an hour on one thread; its page shows a
# run on the two cores of the machine the docs were made on.
THREADS = {"g2p": 2}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="tutorials to run (default: all)")
    args = parser.parse_args()
    names = args.names or sorted(path.stem for path in EXAMPLES.glob("*.py"))
    OUTPUT.mkdir(parents=True, exist_ok=True)
    FIGURES.mkdir(parents=True, exist_ok=True)
    # One thread: float sums then do not depend on the machine's core count,
    # so the outputs the pages show come out the same anywhere.
    for name in names:
        threads = str(THREADS.get(name, 1))
        env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": threads}
        script = EXAMPLES / f"{name}.py"
        if not script.exists():
            sys.exit(f"no tutorial named {name!r}: {script} does not exist")
        print(
            f"running {script.relative_to(ROOT)} on {threads} thread(s) ...", flush=True
        )
        start = time.perf_counter()
        command = [sys.executable, str(script)]
        if "--out" in script.read_text():
            command += ["--out", str(FIGURES)]
        result = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            sys.exit(f"{name} failed:\n{result.stderr[-3000:]}")
        (OUTPUT / f"{name}.txt").write_text(result.stdout)
        print(
            f"  {time.perf_counter() - start:.0f} s, output in "
            f"{(OUTPUT / f'{name}.txt').relative_to(ROOT)}"
        )


if __name__ == "__main__":
    main()
