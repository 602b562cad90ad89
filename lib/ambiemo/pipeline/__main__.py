"""`python -m ambiemo.pipeline [CONFIG] [--stage S] [--model M] [--corpus C]`: see run.py."""
import sys

from ambiemo.pipeline.run import main

sys.exit(main())
