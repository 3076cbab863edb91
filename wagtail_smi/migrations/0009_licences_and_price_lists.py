"""Schema for licences, price lists and per-image selling (issue 12)."""

import django.core.validators
import django.db.models.deletion
import wagtail.fields
from decimal import Decimal
from django.db import migrations, models

import wagtail_smi.models.settings


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_smi", "0008_ai_upscaler"),
        ("wagtailimages", "0027_image_description"),
    ]

    operations = [
        migrations.AddField(
            model_name='purchasejob',
            name='licence_key',
            field=models.CharField(blank=True, db_index=True, max_length=32, verbose_name='licence'),
        ),
        migrations.AddField(
            model_name='purchasejob',
            name='licence_name',
            field=models.CharField(blank=True, max_length=128, verbose_name='licence name'),
        ),
        migrations.AddField(
            model_name='purchasejob',
            name='licence_summary',
            field=models.CharField(blank=True, max_length=255, verbose_name='licence summary'),
        ),
        migrations.AddField(
            model_name='purchasejob',
            name='licence_terms',
            field=models.TextField(blank=True, verbose_name='licence terms (as accepted)'),
        ),
        migrations.AddField(
            model_name='purchasejob',
            name='licence_terms_url',
            field=models.URLField(blank=True, max_length=2048, verbose_name='licence terms URL'),
        ),
        migrations.AddField(
            model_name='purchasejob',
            name='licence_version',
            field=models.CharField(blank=True, max_length=32, verbose_name='licence version'),
        ),
        migrations.AddField(
            model_name='purchasejob',
            name='withdrawal_waived_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='right of withdrawal waived at'),
        ),
        migrations.AddField(
            model_name='smisitesettings',
            name='collection_prices',
            field=wagtail.fields.StreamField([('collection_price', 3)], blank=True, block_lookup={0: ('wagtail.blocks.ChoiceBlock', [], {'choices': wagtail_smi.models.settings.collection_choices, 'label': 'Collection'}), 1: ('wagtail.blocks.CharBlock', (), {'label': 'Resolution key', 'max_length': 16, 'validators': [django.core.validators.RegexValidator('^[a-z0-9][a-z0-9_-]*$', 'Use lowercase letters, digits, - and _ only, e.g. 4x.')]}), 2: ('wagtail_smi.models.settings.MoneyBlock', (), {'label': 'Price', 'required': True}), 3: ('wagtail.blocks.StructBlock', [[('collection', 0), ('resolution', 1), ('price', 2)]], {})}, default=list, help_text="A price for a resolution of every image in a collection (and its sub-collections). An image's own price wins over its collection's.", verbose_name='collection prices'),
        ),
        migrations.AddField(
            model_name='smisitesettings',
            name='copyright_holder',
            field=models.CharField(blank=True, help_text="Written into every delivered file with its licence. Empty: the site's name.", max_length=255, verbose_name='copyright holder'),
        ),
        migrations.AddField(
            model_name='smisitesettings',
            name='cost_per_megapixel',
            field=models.DecimalField(blank=True, decimal_places=4, help_text="What one output megapixel costs you with an upscaler that runs on your own machines (Pillow, Real-ESRGAN): electricity, machine time. Empty: the upscaler's own setting (0 unless configured). Used for margins.", max_digits=10, null=True, validators=[django.core.validators.MinValueValidator(Decimal('0'))], verbose_name='self-hosted upscaling cost per output megapixel'),
        ),
        migrations.AddField(
            model_name='smisitesettings',
            name='licences',
            field=wagtail.fields.StreamField([('licence', 11)], block_lookup={0: ('wagtail.blocks.CharBlock', (), {'help_text': 'Short name used in the API and on orders, e.g. commercial', 'label': 'Key', 'max_length': 32, 'validators': [django.core.validators.RegexValidator('^[a-z0-9][a-z0-9_-]*$', 'Use lowercase letters, digits, - and _ only, e.g. commercial.')]}), 1: ('wagtail.blocks.CharBlock', (), {'label': 'Name', 'max_length': 128}), 2: ('wagtail.blocks.CharBlock', (), {'help_text': 'One line the buyer reads beside the price.', 'label': 'Summary', 'max_length': 255, 'required': False}), 3: ('wagtail.blocks.CharBlock', (), {'default': '1', 'help_text': 'Change it when you change the terms: orders keep the version they bought.', 'label': 'Version', 'max_length': 32}), 4: ('wagtail.blocks.RichTextBlock', (), {'features': ['h3', 'bold', 'italic', 'ol', 'ul', 'link'], 'label': 'Full terms', 'required': False}), 5: ('wagtail.blocks.PageChooserBlock', (), {'label': 'Or: a page with the terms', 'required': False}), 6: ('wagtail.blocks.URLBlock', (), {'help_text': 'For a licence published elsewhere, such as a Creative Commons licence.', 'label': "Or: the terms' address elsewhere", 'required': False}), 7: ('wagtail.blocks.DecimalBlock', (), {'decimal_places': 2, 'default': Decimal('1'), 'help_text': "The resolution's price is multiplied by this: 1 keeps it, 3 triples it.", 'label': 'Price multiplier', 'max_value': 1000, 'min_value': 0}), 8: ('wagtail_smi.models.settings.MoneyBlock', (), {'help_text': "Added after the multiplier, in the site's currency, e.g. 20.00.", 'label': 'Fixed add-on', 'required': False}), 9: ('wagtail.blocks.CharBlock', (), {'help_text': 'Resolution keys separated by commas, e.g. 8x. Empty: every resolution.', 'label': 'Sold with these resolutions', 'max_length': 255, 'required': False}), 10: ('wagtail.blocks.BooleanBlock', (), {'help_text': 'Pre-selected, and the price shown first. Exactly one licence is the default.', 'label': 'Default licence', 'required': False}), 11: ('wagtail.blocks.StructBlock', [[('key', 0), ('name', 1), ('summary', 2), ('version', 3), ('terms', 4), ('terms_page', 5), ('terms_url', 6), ('multiplier', 7), ('add_on', 8), ('resolutions', 9), ('default', 10)]], {})}, default=wagtail_smi.models.settings.default_licences, help_text='What a buyer may do with the copy, and how each licence changes the price.', verbose_name='licences'),
        ),
        migrations.AddField(
            model_name='smisitesettings',
            name='pricing_strategy',
            field=models.CharField(choices=[('cost_plus', 'Cost plus markup (upscaling credits × cost × markup, with a minimum)'), ('fixed', 'Fixed price per resolution')], default='cost_plus', help_text='How a resolution is priced when neither the image nor its collection has its own price.', max_length=16, verbose_name='pricing strategy'),
        ),
        migrations.AddField(
            model_name='smisitesettings',
            name='require_withdrawal_waiver',
            field=models.BooleanField(default=False, help_text='EU consumers may withdraw from a purchase for 14 days unless they ask for immediate delivery and acknowledge losing that right. When on, checkout requires that consent and the order records when it was given.', verbose_name='ask buyers to waive the right of withdrawal'),
        ),
        migrations.AlterField(
            model_name='smisitesettings',
            name='minimum_price_cents',
            field=models.PositiveIntegerField(default=50, help_text='In the currency above, e.g. 0.50. Applies to cost-plus prices.', verbose_name='minimum price'),
        ),
        migrations.AlterField(
            model_name='smisitesettings',
            name='resolutions',
            field=wagtail.fields.StreamField([('resolution', 6)], block_lookup={0: ('wagtail.blocks.CharBlock', (), {'help_text': 'Short name used in URLs and the API, e.g. 4x', 'label': 'Key', 'max_length': 16, 'validators': [django.core.validators.RegexValidator('^[a-z0-9][a-z0-9_-]*$', 'Use lowercase letters, digits, - and _ only, e.g. 4x.')]}), 1: ('wagtail.blocks.IntegerBlock', (), {'label': 'Upscale factor', 'max_value': 16, 'min_value': 2}), 2: ('wagtail.blocks.CharBlock', (), {'label': 'Label', 'max_length': 64}), 3: ('wagtail.blocks.CharBlock', (), {'label': 'Description', 'max_length': 255, 'required': False}), 4: ('wagtail.blocks.BooleanBlock', (), {'default': True, 'label': 'Offered', 'required': False}), 5: ('wagtail_smi.models.settings.MoneyBlock', (), {'help_text': "In the site's currency, e.g. 29.00. Used when the pricing strategy is “Fixed price per resolution”.", 'label': 'Fixed price', 'required': False}), 6: ('wagtail.blocks.StructBlock', [[('key', 0), ('factor', 1), ('label', 2), ('description', 3), ('enabled', 4), ('price', 5)]], {})}, default=wagtail_smi.models.settings.default_resolutions, verbose_name='resolutions offered'),
        ),
        migrations.CreateModel(
            name='ImagePrice',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('resolution', models.CharField(max_length=16, verbose_name='resolution')),
                ('price_cents', models.PositiveIntegerField(verbose_name='price (minor units)')),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('image', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='smi_prices', to='wagtailimages.image')),
            ],
            options={
                'verbose_name': 'image price',
                'verbose_name_plural': 'image prices',
                'constraints': [models.UniqueConstraint(fields=('image', 'resolution'), name='smi_image_price_resolution')],
            },
        ),
    ]
