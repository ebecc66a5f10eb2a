"""Reference image player: a tiny logistic regression on downscaled pixels and colour histograms.

Training: ``python3 image_bot.py --train=True --dataset=DIR --model_path=P`` saves the model (numpy
``.npz`` content) to exactly ``P``. Evaluation: no arguments; loads ``model.pt`` from the working
directory, answers each ``imagePath`` prompt with 0 (cat) or 1 (dog), 0 if the file cannot be read.
"""

import argparse
import json
import os
import socket

import numpy as np
from PIL import Image

SUFFIXES = (".png", ".jpg", ".jpeg")


def features(path):
    image = Image.open(path).convert("RGB")
    small = np.asarray(image.resize((16, 16)), dtype=np.float32) / 255.0
    pixels = np.asarray(image.resize((64, 64)), dtype=np.float32) / 255.0
    histogram = np.concatenate([np.histogram(pixels[:, :, c], bins=8, range=(0, 1))[0] for c in range(3)])
    texture = np.abs(np.diff(pixels, axis=0)).mean(axis=(0, 1))
    return np.concatenate([small.ravel(), histogram / histogram.sum(), texture * 10])


def train(dataset, model_path):
    classes = sorted(name for name in os.listdir(dataset) if os.path.isdir(os.path.join(dataset, name)))
    xs, ys = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(dataset, name)
        for file in sorted(os.listdir(folder)):
            if file.lower().endswith(SUFFIXES):
                xs.append(features(os.path.join(folder, file)))
                ys.append(label)
    x, y = np.array(xs), np.array(ys, dtype=np.float32)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    x = (x - mean) / scale
    weights, bias = np.zeros(x.shape[1], dtype=np.float32), 0.0
    for _ in range(300):
        p = 1 / (1 + np.exp(-(x @ weights + bias)))
        weights -= 0.1 * (x.T @ (p - y) / len(y) + 1e-3 * weights)
        bias -= 0.1 * float((p - y).mean())
    with open(model_path, "wb") as handle:  # a file object keeps the exact name (no .npz added)
        np.savez(handle, weights=weights, bias=np.array(bias), mean=mean, scale=scale)
    accuracy = float((((x @ weights + bias) > 0) == (y > 0.5)).mean())
    print(f"trained on {len(y)} images, training accuracy {accuracy:.2f}")


def predict(model, path):
    x = (features(path) - model["mean"]) / model["scale"]
    return int(x @ model["weights"] + model["bias"] > 0)


def evaluate(model_path):
    model = dict(np.load(model_path))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(2)
    sock.connect(("127.0.0.1", int(os.environ.get("PORT", "5001"))))
    try:
        while True:
            data = sock.recv(1024)
            if not data:
                break
            prompt = json.loads(data)
            try:
                answer = predict(model, prompt["imagePath"])
            except OSError:
                answer = 0
            sock.send(str(answer).encode())
    except TimeoutError:  # legacy scripts stop when no prompt comes within 2 s
        pass
    sock.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=bool, default=False)
    parser.add_argument("--dataset", default="dataset-imagerecognition")
    parser.add_argument("--model_path", default="model.pt")
    args = parser.parse_args()
    if args.train:
        train(args.dataset, args.model_path)
    else:
        evaluate("model.pt")


if __name__ == "__main__":
    main()
