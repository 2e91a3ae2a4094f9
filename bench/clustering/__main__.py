"""`python -m bench.clustering`: runs bench.clustering.clustering (the main benchmark of this question)."""

from bench.clustering.clustering import main

raise SystemExit(main())
