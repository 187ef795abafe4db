#!/usr/bin/env python3
"""Writes Rancher-shaped records for benchmarks: N tokens over U users, as a kube-api-auth records
directory (YAML) or as kube-api-test-server --load input (JSON List), plus the bearer tokens.

  generate-records.py --tokens 10000 --users 1000 --algorithm sha3 --out DIR [--format yaml|json]

Writes DIR/records.{yaml,json} and DIR/tokens.txt (one bearer token per line).
"""
import argparse, base64, hashlib, json, os, random

ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

def b64(data):
    return base64.b64encode(data).decode().rstrip("=")

def rancher_hash(secret, algorithm, rng):
    salt = bytes(rng.getrandbits(8) for _ in range(8))
    if algorithm == "sha3":
        return "$3:1:%s:%s" % (b64(salt), b64(hashlib.sha3_512(salt + secret.encode()).digest()))
    if algorithm == "sha256":
        return "$2:%s:%s" % (b64(salt), b64(hashlib.sha256(salt + secret.encode()).digest()))
    key = hashlib.scrypt(secret.encode(), salt=salt, n=1 << 15, r=8, p=1, maxmem=64 << 20, dklen=64)
    return "$1:%s:15:8:1:%s" % (salt.hex(), b64(key))

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=10000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--algorithm", choices=["sha3", "sha256", "scrypt"], default="sha3")
    parser.add_argument("--out", required=True)
    parser.add_argument("--format", choices=["yaml", "json"], default="yaml")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    objects, bearers = [], []
    for u in range(args.users):
        objects.append({"apiVersion": "cluster.cattle.io/v3", "kind": "ClusterUserAttribute",
                        "metadata": {"name": "u-%05d" % u, "namespace": "cattle-system"},
                        "groups": ["github_org://%d" % (u % 50), "local://g-%d" % (u % 7)], "enabled": True, "needsRefresh": False})
    for t in range(args.tokens):
        name = "kubeconfig-u-%05d%s" % (t % args.users, "".join(rng.choice(ALPHABET) for _ in range(5)))
        secret = "".join(rng.choice(ALPHABET) for _ in range(54))
        objects.append({"apiVersion": "cluster.cattle.io/v3", "kind": "ClusterAuthToken",
                        "metadata": {"name": name, "namespace": "cattle-system"},
                        "userName": "u-%05d" % (t % args.users), "enabled": True, "hash": ""})
        objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "cattle-system"},
                        "type": "Opaque", "data": {"hash": base64.b64encode(rancher_hash(secret, args.algorithm, rng).encode()).decode()}})
        bearers.append("%s:%s" % (name, secret))
    if args.format == "json":
        with open(os.path.join(args.out, "records.json"), "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": objects}, f)
    else:
        with open(os.path.join(args.out, "records.yaml"), "w") as f:
            for obj in objects:
                f.write("---\n" + json.dumps(obj) + "\n")
    with open(os.path.join(args.out, "tokens.txt"), "w") as f:
        f.write("\n".join(bearers) + "\n")

if __name__ == "__main__":
    main()
