from boardgraph.cli import main

raise SystemExit(main())
