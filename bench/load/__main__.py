"""`python -m bench.load`: runs bench.load.load_test (the main benchmark of this question)."""

from bench.load.load_test import main

raise SystemExit(main())
