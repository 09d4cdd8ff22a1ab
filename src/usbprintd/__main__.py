from usbprintd.cli import main

raise SystemExit(main())
