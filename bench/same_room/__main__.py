"""`python -m bench.same_room`: runs bench.same_room.same_room (the main benchmark of this question)."""

from bench.same_room.same_room import main

raise SystemExit(main())
