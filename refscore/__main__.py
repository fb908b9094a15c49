from refscore.apps.cli import main

raise SystemExit(main())
