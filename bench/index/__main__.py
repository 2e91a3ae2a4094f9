"""`python -m bench.index`: runs bench.index.index_scale (the main benchmark of this question)."""

from bench.index.index_scale import main

raise SystemExit(main())
