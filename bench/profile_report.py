"""Sum py-spy's raw stacks (bench/profile_hot_paths.py --profile DIR) per load: the functions the
workers spent their samples in, inclusive (on the stack) and self (at the top), idle excluded.

    .venv/bin/python bench/profile_report.py DIR [--top 25]
"""

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

# A sync worker waiting for its next connection or for the database is not spending CPU.
IDLE = re.compile(r"\((?:selectors|socket|ssl)\.py\)|\bwait \(|\b_poll|select \(|accept \(|recv")


def frames(stack: str) -> list[str]:
    return [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    loads: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(Path(args.folder).glob("*.txt")):
        loads[path.stem.rsplit("-", 1)[0]].append(path)
    for load, paths in loads.items():
        inclusive, own, busy = Counter(), Counter(), 0
        for path in paths:
            for line in path.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if not stack:
                    continue
                stack_frames = frames(stack)
                if IDLE.search(stack_frames[-1]):
                    continue
                busy += int(count)
                for frame in set(stack_frames):
                    inclusive[frame] += int(count)
                own[stack_frames[-1]] += int(count)
        print(f"== {load}: {busy} busy samples")
        print("-- inclusive")
        for frame, count in inclusive.most_common(args.top):
            print(f"{100 * count / busy:5.1f}%  {frame}")
        print("-- self")
        for frame, count in own.most_common(args.top // 2):
            print(f"{100 * count / busy:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
