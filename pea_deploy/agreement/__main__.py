from .vela import main

raise SystemExit(main())
