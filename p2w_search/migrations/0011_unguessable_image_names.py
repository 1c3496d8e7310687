from django.db import migrations, models

import p2w_search.models


class Migration(migrations.Migration):
    """Product images are stored under names with random digits (models.image_path); stored names stay."""

    dependencies = [
        ('p2w_search', '0010_wider_file_names'),
    ]

    operations = [
        migrations.AlterField(
            model_name='productimage',
            name='file',
            field=models.FileField(max_length=1024, upload_to=p2w_search.models.image_path),
        ),
    ]
