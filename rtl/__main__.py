from rtl.verilog import main

raise SystemExit(main())
