"""Write (or, with --check, compare) the generated files: man/man1/*.1 from the
commands and their prose, completions/* from click's completion support.
Run as scripts/gen-docs [--check]."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

MAN_DIR = Path("man/man1")
COMPLETIONS = {"bash": Path("completions/pysock"), "zsh": Path("completions/_pysock"),
               "fish": Path("completions/pysock.fish")}


def generated() -> dict[Path, str]:
    """Repository-relative path -> the text it should hold."""
    from pysock.cli import COMMANDS, cli
    from pysock.cli.completion import script
    from pysock.cli.manpage import all_pages

    files = {MAN_DIR / name: text for name, text in all_pages(cli, COMMANDS).items()}
    files.update({path: script(shell) for shell, path in COMPLETIONS.items()})
    return files


def stale(root: Path, files: dict[Path, str]) -> list[Path]:
    """Generated-looking files that nothing generates any more (a removed command's page)."""
    present = sorted((root / MAN_DIR).glob("*.1"))
    return [p.relative_to(root) for p in present if p.relative_to(root) not in files]


def check(root: Path) -> list[str]:
    """One line per problem, with a diff for each file that differs."""
    files = generated()
    problems = []
    for path, text in files.items():
        target = root / path
        old = target.read_text(encoding="utf-8") if target.exists() else None
        if old is None:
            problems.append(f"{path}: missing")
        elif old != text:
            diff = difflib.unified_diff(old.splitlines(), text.splitlines(), f"{path} (committed)",
                                        f"{path} (generated)", lineterm="", n=1)
            problems.append(f"{path}: differs\n" + "\n".join(list(diff)[:40]))
    problems += [f"{path}: no command makes this page any more" for path in stale(root, files)]
    return problems


def write(root: Path) -> list[Path]:
    files = generated()
    changed = []
    for path, text in files.items():
        target = root / path
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            changed.append(path)
    for path in stale(root, files):
        (root / path).unlink()
        changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gen-docs", description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a generated file is not up to date")
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.root)
        for problem in problems:
            print(f"gen-docs: {problem}", file=sys.stderr)
        if problems:
            print("gen-docs: run scripts/gen-docs and commit the result", file=sys.stderr)
        return 1 if problems else 0
    for path in write(args.root):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
