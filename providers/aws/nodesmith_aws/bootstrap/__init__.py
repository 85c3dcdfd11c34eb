"""User data per AMI family: what a node boots with, rendered from `options.Bootstrap`.

Pure, no I/O. Fed by `nodesmith_aws.amifamily.user_data` (which picks the family); each module renders
one node agent's format and is checked against that agent's own validator in the tests:

* `nodeadm` — AL2023: a MIME archive whose first part is nodesmith's ``NodeConfig`` (read by nodeadm);
* `eksbootstrap` — AL2: a MIME archive whose last part calls ``/etc/eks/bootstrap.sh``;
* `bottlerocket` — Bottlerocket: TOML settings, the user's TOML with nodesmith's keys laid over it;
* `mime` — reading the user's MIME parts and writing the archive, shared by the first two.
"""
