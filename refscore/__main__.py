from refscore.cli import main

raise SystemExit(main())
