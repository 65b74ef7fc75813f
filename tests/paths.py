"""Where tests find files outside the package: the repository root and the shared Gateway API CRDs.

CI clones the project with ``shared/`` beside it (``../shared`` from the repository root), wherever the clone is;
``FLAGGERPY_GATEWAY_CRDS`` overrides the location for other layouts.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
GATEWAY_CRDS_ENV = "FLAGGERPY_GATEWAY_CRDS"
GATEWAY_API_CRDS = Path(os.environ.get(GATEWAY_CRDS_ENV, REPO_ROOT.parent / "shared" / "gateway-api-v1.6.1"))
