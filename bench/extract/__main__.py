"""`python -m bench.extract`: runs bench.extract.extract (the main benchmark of this question)."""

from bench.extract.extract import main

raise SystemExit(main())
