from django.db import migrations, models


class Migration(migrations.Migration):
    """A merchant's jobs are listed and counted by merchant_key: indexes, not scans of every merchant's jobs."""

    dependencies = [
        ('p2w_search', '0011_unguessable_image_names'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='importjob',
            index=models.Index(fields=['merchant_key', '-id'], name='p2w_job_merchant_newest'),
        ),
        migrations.AddIndex(
            model_name='importjob',
            index=models.Index(condition=models.Q(('state__in', ['queued', 'running'])), fields=['merchant_key'],
                               name='p2w_job_merchant_waiting'),
        ),
    ]
