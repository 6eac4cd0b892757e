"""The local stack: real etcd, NATS and service processes on loopback, for `make run` and the tests."""
