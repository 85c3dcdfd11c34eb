"""Test kit for the AWS provider: a moto server on loopback, honest fault injection at the botocore
boundary, and a moto → kwok bridge that turns launched instances into kwok Nodes.

Used by nodesmith's own tests and usable by anyone testing against the provider.
"""
