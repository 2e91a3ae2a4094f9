"""`python -m bench.gan`: runs bench.gan.gan_verdict (the main benchmark of this question)."""

from bench.gan.gan_verdict import main

raise SystemExit(main())
