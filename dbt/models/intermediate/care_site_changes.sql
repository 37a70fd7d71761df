{{ changes_model('care_site') }}
