echo "hello from $APP_HOME, with $(ls /app/deps | wc -l) dependencies"
