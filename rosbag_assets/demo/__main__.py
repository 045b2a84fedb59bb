"""`make demo`: write the sample drive, materialize the whole chain for it, print what came out and where.

The Dagster part (materializing against the instance `make dev` opens) lives in `rosbag_assets.defs.demo`.
"""

import sys

from rosbag_assets.defs.demo import main

if __name__ == "__main__":
    sys.exit(main())
