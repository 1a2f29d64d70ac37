"""`python -m rag.embed [MODEL]`: export the ONNX question encoder of MODEL (default: the bundled model) once."""

import sys

from rag.embed.export import main

sys.exit(main())
