import sys

from vcalld.cli import vcalld_main

sys.exit(vcalld_main())
