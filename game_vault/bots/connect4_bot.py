"""Reference Connect 4 player (O): win, else block, else avoid handing over a win, centre first.

Written like existing Lumia scripts: ``recv(1024)`` + ``json.loads``, reads ``playerSymbol`` from
every message, plays only when ``currentTurn`` equals it, stops on ``isGameOver``, bare digits.
"""

import json
import os
import socket

ROWS, COLUMNS = 6, 7
ORDER = [3, 2, 4, 1, 5, 0, 6]


def drop(grid, column, piece):
    for row in range(ROWS - 1, -1, -1):
        if grid[row][column] == ".":
            grid[row][column] = piece
            return row
    return None


def wins(grid, piece):
    for row in range(ROWS):
        for column in range(COLUMNS):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (-1, 1)):
                cells = [(row + i * dr, column + i * dc) for i in range(4)]
                if all(0 <= r < ROWS and 0 <= c < COLUMNS and grid[r][c] == piece for r, c in cells):
                    return True
    return False


def winning_column(grid, piece):
    for column in ORDER:
        trial = [list(line) for line in grid]
        if drop(trial, column, piece) is not None and wins(trial, piece):
            return column
    return None


def choose(grid, me):
    them = "X" if me == "O" else "O"
    for piece in (me, them):
        column = winning_column(grid, piece)
        if column is not None:
            return column
    playable = [column for column in ORDER if grid[0][column] == "."]
    for column in playable:
        trial = [list(line) for line in grid]
        drop(trial, column, me)
        if winning_column(trial, them) is None:
            return column
    return playable[0]


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect(("127.0.0.1", int(os.environ.get("PORT", "5001"))))
    while True:
        data = sock.recv(1024)
        if not data:
            break
        state = json.loads(data)
        if state["isGameOver"]:
            print(state.get("message", "Game over"))
            break
        if state["currentTurn"] == state["playerSymbol"]:
            grid = [list(line) for line in state["grid"].split("\n")]
            sock.send(str(choose(grid, state["playerSymbol"])).encode())
    sock.close()


if __name__ == "__main__":
    main()
