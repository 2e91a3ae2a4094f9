"""`python -m bench.fuzz`: runs bench.fuzz.fuzz_images (the main benchmark of this question)."""

from bench.fuzz.fuzz_images import main

raise SystemExit(main())
