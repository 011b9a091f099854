from reflectevo.cli import main

raise SystemExit(main())
