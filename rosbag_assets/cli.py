"""`rosbag-assets`: the command line of things people do outside the Dagster UI.

rosbag-assets search "class_name = 'person' and in_ego_lane and speed_mps > 5" --sheet hits.jpg
rosbag-assets search --scene person_in_ego_lane
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rosbag-assets", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    from rosbag_assets.steps import search

    search.add_arguments(
        commands.add_parser(
            "search", help="find frames across drives in the catalog (a SQL WHERE over labels)"
        )
    )
    args = parser.parse_args(argv)
    if args.command == "search":
        return search.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
