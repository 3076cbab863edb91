"""Settings for the gating bench's server (``bench/run.py``): the demo's, plus the baselines.

The database, media folders, secret key and debug flag come from the environment as for the
demo; ``bench/run.py`` sets them for a throwaway database and folder.
"""

from demo_site.settings import *  # noqa: F403

ROOT_URLCONF = "bench.gate_urls"
