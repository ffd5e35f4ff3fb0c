"""The `vip-rl` command."""
import argparse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vip-rl")
    parser.parse_args(argv)
    return 0
