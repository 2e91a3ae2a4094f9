"""`python -m bench.edited_copies`: runs bench.edited_copies.near_duplicates (this question's main bench)."""

import numpy as np

from bench.edited_copies.near_duplicates import main

np.set_printoptions(precision=3)
raise SystemExit(main())
