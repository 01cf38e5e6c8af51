"""`python -m bridge demo` as a person runs it: a real Synapse, the bridge, a scripted
customer and attendant, a transcript on stdout, and Ctrl-C stopping everything."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _reader(stream, lines: queue.Queue[str]) -> None:  # type: ignore[no-untyped-def]
    for line in stream:
        lines.put(line.rstrip("\n"))


def test_demo_plays_a_conversation_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "demo", "--data-dir", str(tmp_path / "demo")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        while not any("Obrigada" in line for line in seen):
            seen.append(lines.get(timeout=120))  # a condition with a deadline, not a sleep
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    while not lines.empty():
        seen.append(lines.get())
    text = "\n".join(seen)
    assert "Matrix homeserver: http://127.0.0.1:" in text
    assert "@admin:localhost   password:" in text
    transcript = seen[seen.index("Transcript:") + 1 :]
    assert transcript[:5] == [
        "[WhatsApp → Matrix] Maria: Oi! Meu pedido *#4521* ainda não chegou 😕",
        "[bridge → WhatsApp] auto reply: Olá! Um atendente já vai falar com você.",
        "[WhatsApp → Matrix] Maria: [location: Casa]",
        "[Matrix → WhatsApp] attendant: Oi Maria! Vou verificar o pedido *#4521* agora mesmo.",
        "[WhatsApp → Matrix] Maria: Obrigada! 🙏",
    ]
    assert "stopping …" in text and "Traceback" not in text
    # the attendant's answer really reached the simulated customer, signed
    outbound = (
        tmp_path / "demo" / "data" / "sim" / "demo" / "sales" / "outbound.jsonl"
    ).read_text()
    assert "*attendant:*\\nOi Maria!" in outbound
