"""`python -m orderflow.stack run | services | test [pytest args...]` (see orderflow.stack.cli)."""

from orderflow.stack.cli import main

raise SystemExit(main())
