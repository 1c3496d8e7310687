
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('p2w_search', '0002_image_in_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ImportJob',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('merchant_key', models.CharField(help_text='The merchant the products belong to.', max_length=100)),
                ('state', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('rejected', 'rejected (nothing written)'), ('failed', 'Failed')], default='queued', max_length=16)),
                ('policy', models.CharField(choices=[('skip', 'skip bad rows'), ('reject', 'reject the whole upload')], default='skip', max_length=16)),
                ('full_sync', models.BooleanField(default=False, help_text="Unlist the merchant's products missing from the file.")),
                ('manifest', models.FileField(upload_to='p2w/imports/%Y/%m/')),
                ('archive', models.FileField(blank=True, upload_to='p2w/imports/%Y/%m/')),
                ('rows_total', models.PositiveIntegerField(default=0)),
                ('rows_accepted', models.PositiveIntegerField(default=0)),
                ('rows_rejected', models.PositiveIntegerField(default=0)),
                ('products_unlisted', models.PositiveIntegerField(default=0)),
                ('errors', models.JSONField(blank=True, default=list)),
                ('image_ids', models.JSONField(blank=True, default=list)),
                ('message', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('owner', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-pk'],
            },
        ),
    ]
