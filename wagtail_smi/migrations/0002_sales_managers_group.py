"""Create the "Sales managers" group: may reach the admin, view orders and reports, act on orders.

Permissions are created here when missing (Django creates them only after all migrations
ran), so the group is complete on a fresh database. The reverse removes the group only.
"""

from django.db import migrations

GROUP_NAME = "Sales managers"
ORDER_PERMISSIONS = [
    ("view_purchasejob", "Can view order"),
    ("change_purchasejob", "Can change order"),
]


def _permission(apps, app_label, model, codename, name):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename=codename, defaults={"name": name}
    )
    return permission


def create_group(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    group, _ = Group.objects.get_or_create(name=GROUP_NAME)
    permissions = [
        _permission(apps, "wagtailadmin", "admin", "access_admin", "Can access Wagtail admin"),
        *(
            _permission(apps, "wagtail_smi", "purchasejob", codename, name)
            for codename, name in ORDER_PERMISSIONS
        ),
    ]
    group.permissions.add(*permissions)


def remove_group(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.filter(name=GROUP_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_smi", "0001_initial"),
        ("wagtailadmin", "0001_create_admin_access_permissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
