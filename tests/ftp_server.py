"""An FTP server on loopback laid out like DATASUS's tree, which can drop transfers and refuse listed files."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import ThreadedFTPServer

logging.getLogger("pyftpdlib").setLevel(logging.WARNING)

SIH = "dissemin/publicos/SIHSUS/200801_/Dados"
SIH_OLD = "dissemin/publicos/SIHSUS/199201_200712/Dados"
SIA = "dissemin/publicos/SIASUS/200801_/Dados"
SIM = "dissemin/publicos/SIM/CID10/DORES"


@dataclass
class Faults:
    drops: dict[str, int] = field(default_factory=dict)  # file name -> transfers to cut short
    refused: set[str] = field(default_factory=set)  # listed, but RETR answers 550
    retrs: list[tuple[str, int]] = field(default_factory=list)  # (name, REST offset) per RETR


CUT_SUFFIX = ".cut"


class DatasusHandler(FTPHandler):
    faults: Faults

    def ftp_RETR(self, file):
        name = Path(file).name
        self.faults.retrs.append((name, self._restart_position))
        if name in self.faults.refused:
            self.respond("550 Can't open file: input/output error.")
            return None
        if self.faults.drops.get(name, 0) > 0:
            self.faults.drops[name] -= 1
            # Send a third of what is left, then hang up the control connection (on_file_sent).
            start = self._restart_position
            data = Path(file).read_bytes()[start:]
            cut = Path(file).with_name(name + CUT_SUFFIX)
            cut.write_bytes(data[: len(data) // 3])
            self._restart_position = 0
            return super().ftp_RETR(str(cut))
        return super().ftp_RETR(file)

    def on_file_sent(self, file):
        # Hanging up as the transfer began sometimes closed the data connection before a byte was out, and the
        # client had nothing to resume from; now the third has been sent whole.
        if file.endswith(CUT_SUFFIX):
            self.close_when_done()


class FtpServer:
    """`with FtpServer(root) as url:`; files are whatever the test puts under root."""

    def __init__(self, root: Path, faults: Faults | None = None):
        self.root = Path(root)
        self.faults = faults or Faults()

    def __enter__(self) -> str:
        authorizer = DummyAuthorizer()
        authorizer.add_anonymous(str(self.root))
        handler = type("Handler", (DatasusHandler,), {"faults": self.faults, "authorizer": authorizer})
        self.server = ThreadedFTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"timeout": 0.1}, daemon=True)
        self.thread.start()
        return f"ftp://127.0.0.1:{self.server.address[1]}"

    def __exit__(self, *exc) -> None:
        self.server.close_all()
        self.thread.join(timeout=5)


def put(root: Path, folder: str, name: str, data: bytes) -> Path:
    path = Path(root) / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
