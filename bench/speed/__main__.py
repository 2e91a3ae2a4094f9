"""`python -m bench.speed`: runs bench.speed.search_speed (the main benchmark of this question)."""

from bench.speed.search_speed import main

raise SystemExit(main())
