"""Random Snake mover, for comparison with ``snake_bot``. ``SEED`` and ``PORT`` from the environment."""

import json
import os
import random
import socket

COMMANDS = ["MOVE_UP", "MOVE_DOWN", "MOVE_LEFT", "MOVE_RIGHT"]


def main():
    rng = random.Random(int(os.environ.get("SEED", "0")))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect(("localhost", int(os.environ.get("PORT", "5001"))))
    while True:
        data = sock.recv(1024)
        if not data:
            break
        state = json.loads(data)
        if state["isGameOver"]:
            break
        sock.send(rng.choice(COMMANDS).encode())
    sock.close()


if __name__ == "__main__":
    main()
