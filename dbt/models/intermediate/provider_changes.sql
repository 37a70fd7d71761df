{{ changes_model('provider') }}
