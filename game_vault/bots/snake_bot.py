"""Reference Snake player: shortest safe path to the food, else the roomiest move.

Written like existing Lumia scripts: connect to localhost:5001, ``recv(1024)`` + ``json.loads``,
bare commands with no newline. ``PORT`` in the environment overrides the port.
"""

import json
import os
import socket
from collections import deque

SIZE = 10
MOVES = {"MOVE_UP": (0, -1), "MOVE_DOWN": (0, 1), "MOVE_LEFT": (-1, 0), "MOVE_RIGHT": (1, 0)}


def neighbours(cell):
    for name, (dx, dy) in MOVES.items():
        x, y = cell[0] + dx, cell[1] + dy
        if 0 <= x < SIZE and 0 <= y < SIZE:
            yield name, (x, y)


def path_to(start, goals, blocked):
    """Moves of a shortest path from start to any goal cell, avoiding blocked cells."""
    queue = deque([start])
    came_from = {start: None}
    while queue:
        cell = queue.popleft()
        if cell in goals and cell != start:
            moves = []
            while came_from[cell] is not None:
                cell, move = came_from[cell]
                moves.append(move)
            return moves[::-1]
        for move, nxt in neighbours(cell):
            if nxt not in came_from and (nxt not in blocked or nxt in goals):
                came_from[nxt] = (cell, move)
                queue.append(nxt)
    return None


def follow(body, moves, food):
    body = list(body)
    for move in moves:
        dx, dy = MOVES[move]
        head = (body[0][0] + dx, body[0][1] + dy)
        body.insert(0, head)
        if head != food:
            body.pop()
    return body


def room(start, blocked):
    seen, queue = {start}, deque([start])
    while queue:
        for _, nxt in neighbours(queue.popleft()):
            if nxt not in seen and nxt not in blocked:
                seen.add(nxt)
                queue.append(nxt)
    return len(seen)


def choose(state):
    body = [tuple(cell) for cell in state["snake"]]
    head, food = body[0], state["food"]
    blocked = set(body)  # the tail cell counts as a collision too
    if food != "None":
        food = tuple(food)
        moves = path_to(head, {food}, blocked)
        if moves:
            after = follow(body, moves, food)
            # Safe only if, once there, the snake can still reach its own tail.
            if len(after) >= SIZE * SIZE or path_to(after[0], {after[-1]}, set(after[:-1])):
                return moves[0]
    best, best_score = state["direction"], -1
    for move, cell in neighbours(head):
        if cell in blocked:
            continue
        after = follow(body, [move], food)
        score = room(cell, set(after[1:])) * 2 + (1 if path_to(cell, {after[-1]}, set(after[:-1])) else 0)
        if score > best_score:
            best, best_score = move, score
    return best


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect(("localhost", int(os.environ.get("PORT", "5001"))))
    while True:
        data = sock.recv(1024)
        if not data:
            break
        state = json.loads(data)
        if state["isGameOver"]:
            print("Game over, score", state["score"])
            break
        sock.send(choose(state).encode())
    sock.close()


if __name__ == "__main__":
    main()
