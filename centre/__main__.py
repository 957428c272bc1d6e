"""`python -m centre`: the barrier-centre command."""

from centre.cli import main

raise SystemExit(main())
