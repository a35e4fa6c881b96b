"""What the tests share: builders of test data, the databases they run on, real processes of
the service, signing keys and tokens, a JWKS server, apps on the test's database, and readers of
what the service reports. Fixtures stay in the conftest.py files; everything else is here."""
