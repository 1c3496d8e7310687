
import django.db.models.deletion
import pgvector.django.halfvec
from django.conf import settings
from django.db import migrations, models

from p2w_search.vector_extension import CreateVectorExtension


class Migration(migrations.Migration):

    initial = True

    # The product model is the shop's, named by a setting like AUTH_USER_MODEL.
    dependencies = [
        migrations.swappable_dependency(settings.P2W_SEARCH_PRODUCT_MODEL),
    ]

    operations = [
        # pgvector's VectorExtension, with a message that says what to do when the role may not create it.
        CreateVectorExtension(),
        migrations.CreateModel(
            name='EmbeddingModel',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('alias', models.CharField(help_text="The P2W_SEARCH['EMBEDDERS'] alias that configures it.", max_length=100)),
                ('architecture', models.CharField(max_length=200)),
                ('weights', models.CharField(help_text='Pretrained tag or checkpoint file name.', max_length=500)),
                ('checksum', models.CharField(blank=True, help_text='SHA-256 of the checkpoint file, if any.', max_length=64)),
                ('dimensions', models.PositiveIntegerField()),
                ('state', models.CharField(choices=[('building', 'building (embedding the catalog)'), ('serving', 'serving searches'), ('retired', 'retired')], default='building', max_length=16)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('serving_since', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('architecture', 'weights', 'checksum'), name='p2w_model_identity'), models.UniqueConstraint(condition=models.Q(('state', 'serving')), fields=('state',), name='p2w_one_serving_model')],
            },
        ),
        migrations.CreateModel(
            name='ProductImage',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('file', models.FileField(max_length=300, upload_to='p2w/images/%Y/%m/')),
                ('sha256', models.CharField(db_index=True, max_length=64)),
                ('position', models.PositiveSmallIntegerField(default=0)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('product', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='p2w_images', to=settings.P2W_SEARCH_PRODUCT_MODEL)),
            ],
            options={
                'ordering': ['product_id', 'position', 'id'],
            },
        ),
        migrations.CreateModel(
            name='ImageEmbedding',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('state', models.CharField(choices=[('pending', 'Pending'), ('ready', 'Ready'), ('failed', 'Failed')], default='pending', max_length=16)),
                ('error', models.TextField(blank=True)),
                ('vector', pgvector.django.halfvec.HalfVectorField(blank=True, null=True)),
                ('norm', models.FloatField(blank=True, null=True)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('queued_at', models.DateTimeField(blank=True, null=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('model', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='embeddings', to='p2w_search.embeddingmodel')),
                ('image', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='embeddings', to='p2w_search.productimage')),
            ],
            options={
                'indexes': [models.Index(fields=['model', 'state', 'queued_at'], name='p2w_emb_model_state')],
                'constraints': [models.UniqueConstraint(fields=('image', 'model'), name='p2w_one_embedding_per_model'), models.CheckConstraint(condition=models.Q(models.Q(('norm__isnull', False), ('state', 'ready'), ('vector__isnull', False)), models.Q(('state', 'ready'), _negated=True), _connector='OR'), name='p2w_ready_has_vector')],
            },
        ),
    ]
