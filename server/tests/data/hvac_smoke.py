"""hvac, the reference Python Vault client, against the server at $EA_ADDR (token $EA_TOKEN)."""
import base64
import os

import hvac

c = hvac.Client(url=os.environ["EA_ADDR"], token=os.environ["EA_TOKEN"])
assert c.is_authenticated()
t = c.secrets.transit
t.create_key(name="hv")
assert t.read_key(name="hv")["data"]["latest_version"] == 1
ct = t.encrypt_data(name="hv", plaintext=base64.b64encode(b"hello").decode())["data"]["ciphertext"]
assert base64.b64decode(t.decrypt_data(name="hv", ciphertext=ct)["data"]["plaintext"]) == b"hello"
t.rotate_key(name="hv")
assert t.rewrap_data(name="hv", ciphertext=ct)["data"]["ciphertext"].startswith("vault:v2:")
batch = t.encrypt_data(name="hv", batch_input=[{"plaintext": "aGk="}, {"plaintext": "aGk="}])
assert len(batch["data"]["batch_results"]) == 2
assert "plaintext" in t.generate_data_key(name="hv", key_type="plaintext")["data"]
assert t.generate_hmac(name="hv", hash_input="aGk=")["data"]["hmac"].startswith("vault:v2:")
assert len(base64.b64decode(t.generate_random_bytes(n_bytes=16)["data"]["random_bytes"])) == 16
assert t.hash_data(hash_input="aGk=")["data"]["sum"] == "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"
assert t.list_keys()["data"]["keys"] == ["hv"]
t.update_key_configuration(name="hv", deletion_allowed=True)
assert t.delete_key(name="hv").status_code == 204
c.sys.create_or_update_policy(name="p", policy={"path": {"transit/encrypt/x": {"capabilities": ["update"]}}})
assert "transit/encrypt/x" in c.sys.read_policy(name="p")["data"]["rules"]
assert c.sys.read_health_status(method="GET")["sealed"] is False
token = c.auth.token.create(policies=["p"], ttl="1h")["auth"]["client_token"]
assert hvac.Client(url=os.environ["EA_ADDR"], token=token).auth.token.lookup_self()["data"]["policies"] == ["default", "p"]
c.sys.enable_secrets_engine(backend_type="kv", path="kv1", options={"version": "1"})
assert "kv1/" in c.sys.list_mounted_secrets_engines()["data"]
kv1 = c.secrets.kv.v1
kv1.create_or_update_secret(path="app/db", secret={"user": "u", "password": "p"}, mount_point="kv1")
assert kv1.read_secret(path="app/db", mount_point="kv1")["data"] == {"user": "u", "password": "p"}
assert kv1.list_secrets(path="app", mount_point="kv1")["data"]["keys"] == ["db"]
kv1.delete_secret(path="app/db", mount_point="kv1")
try:
    kv1.read_secret(path="app/db", mount_point="kv1")
    raise AssertionError("a deleted secret was read")
except hvac.exceptions.InvalidPath:
    pass
c.sys.disable_secrets_engine(path="kv1")
kv2 = c.secrets.kv.v2  # the dev server's `secret/` mount
kv2.create_or_update_secret(path="svc", secret={"k": "v1"})
kv2.create_or_update_secret(path="svc", secret={"k": "v2"}, cas=1)
assert kv2.read_secret_version(path="svc", raise_on_deleted_version=True)["data"]["data"] == {"k": "v2"}
assert kv2.read_secret_version(path="svc", version=1, raise_on_deleted_version=True)["data"]["data"] == {"k": "v1"}
assert kv2.list_secrets(path="")["data"]["keys"] == ["svc"]
kv2.delete_latest_version_of_secret(path="svc")
kv2.undelete_secret_versions(path="svc", versions=[2])
kv2.destroy_secret_versions(path="svc", versions=[1])
meta = kv2.read_secret_metadata(path="svc")["data"]
assert meta["current_version"] == 2 and meta["versions"]["1"]["destroyed"] is True
kv2.update_metadata(path="svc", max_versions=5, custom_metadata={"team": "a"})
assert kv2.read_secret_metadata(path="svc")["data"]["custom_metadata"] == {"team": "a"}
kv2.delete_metadata_and_all_versions(path="svc")
c.sys.enable_auth_method(method_type="userpass", path="people")
assert "people/" in c.sys.list_auth_methods()["data"]
c.auth.userpass.create_or_update_user(username="ann", password="ann-pass", policies=["p"], mount_point="people")
assert "ann" in c.auth.userpass.list_user(mount_point="people")["data"]["keys"]
logged_in = hvac.Client(url=os.environ["EA_ADDR"])
auth = logged_in.auth.userpass.login(username="ann", password="ann-pass", mount_point="people")["auth"]
assert "p" in auth["policies"] and logged_in.is_authenticated()
try:
    hvac.Client(url=os.environ["EA_ADDR"]).auth.userpass.login(username="ann", password="nope", mount_point="people")
    raise AssertionError("a wrong password logged in")
except hvac.exceptions.InvalidRequest:
    pass
c.auth.userpass.delete_user(username="ann", mount_point="people")
c.sys.disable_auth_method(path="people")
c.sys.enable_auth_method(method_type="approle")
c.auth.approle.create_or_update_approle(role_name="svc", token_policies=["p"], token_ttl="1h")
role_id = c.auth.approle.read_role_id(role_name="svc")["data"]["role_id"]
made = c.auth.approle.generate_secret_id(role_name="svc")["data"]
looked = c.auth.approle.read_secret_id(role_name="svc", secret_id=made["secret_id"])["data"]
assert looked["secret_id_accessor"] == made["secret_id_accessor"]
app = hvac.Client(url=os.environ["EA_ADDR"])
assert "p" in app.auth.approle.login(role_id=role_id, secret_id=made["secret_id"])["auth"]["policies"]
assert app.is_authenticated()
c.auth.approle.destroy_secret_id(role_name="svc", secret_id=made["secret_id"])
try:
    hvac.Client(url=os.environ["EA_ADDR"]).auth.approle.login(role_id=role_id, secret_id=made["secret_id"])
    raise AssertionError("a destroyed secret ID logged in")
except hvac.exceptions.InvalidRequest:
    pass
c.auth.approle.delete_role(role_name="svc")
c.sys.disable_auth_method(path="approle")
# Leases: this server's engines issue none yet, so what hvac sends for a lease
# that does not exist (the lease manager's own tests issue real ones).
for call in (lambda: c.sys.read_lease(lease_id="nope/x"), lambda: c.sys.renew_lease(lease_id="nope/x", increment=60)):
    try:
        call()
        raise AssertionError("an unknown lease was found")
    except hvac.exceptions.InvalidRequest as refused:
        assert "invalid lease" in str(refused) or "lease not found" in str(refused), refused
try:
    c.sys.list_leases(prefix="nope")
    raise AssertionError("leases listed under an empty prefix")
except hvac.exceptions.InvalidPath:
    pass
assert c.sys.revoke_lease(lease_id="nope/x").status_code == 204
assert c.sys.revoke_prefix(prefix="nope").status_code == 204
assert c.sys.revoke_force(prefix="nope").status_code == 204
print("hvac ok")
