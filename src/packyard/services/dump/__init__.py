"""Export and import in devpi's dump format (devpi-protocol.md §13), so that backups move
between packyard servers and to and from devpi-server.

Split by job: `format` holds what both sides share, `export` writes a dump, `imports` reads
one.
"""

from packyard.services.dump.export import Exporter
from packyard.services.dump.format import Progress, Summary
from packyard.services.dump.imports import Importer, ImportOptions

__all__ = ["Exporter", "ImportOptions", "Importer", "Progress", "Summary"]
