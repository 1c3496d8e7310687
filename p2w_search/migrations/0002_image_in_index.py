
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('p2w_search', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='productimage',
            name='in_index',
            field=models.BooleanField(default=True),
        ),
    ]
