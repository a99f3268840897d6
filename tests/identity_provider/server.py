"""Runs the tests' OIDC provider: migrates its database, makes its client and users from ``IDP_SETUP`` (JSON:
``client_id``, ``client_secret``, ``redirect_uris``, ``users``: username, password, email, groups, active), then
serves on ``IDP_PORT`` until stopped. ``tests/accounts/identity.py`` starts it and changes its users."""

import json
import os
import sys


def main() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.identity_provider.settings"
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from oauth2_provider.models import Application

    setup = json.loads(os.environ["IDP_SETUP"])
    call_command("migrate", verbosity=0, interactive=False)
    Application.objects.create(
        name="Enclave",
        client_id=setup["client_id"],
        client_secret=setup["client_secret"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(setup["redirect_uris"]),
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )
    for person in setup["users"]:
        user = User.objects.create_user(person["username"], person.get("email", ""), person["password"])
        user.is_active = person.get("active", True)
        user.save()
        for name in person.get("groups", []):
            user.groups.add(Group.objects.get_or_create(name=name)[0])
    sys.stdout.write("identity provider ready\n")
    sys.stdout.flush()
    call_command("runserver", f"127.0.0.1:{os.environ['IDP_PORT']}", use_reloader=False, skip_checks=True)


if __name__ == "__main__":
    main()
