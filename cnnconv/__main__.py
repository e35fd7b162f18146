from cnnconv.cli import main

raise SystemExit(main())
